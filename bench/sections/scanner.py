"""3. Scanner: coupecircuitd against find | xargs grep | wc -l."""
import os
import shlex
import signal
import time

from lib.common import (AUTH_MARKER, PROCS, HardCheckFailed, cpu_ns, drop_caches, human_count, log, med,
                        parse_time_v, proc_status_kb, run, spread)


def shell_count(bench, directory, tag):
    time_file = bench.path("logs", f"time-shell-{tag}.txt")
    command = (f"find {shlex.quote(directory)} -name 'sess_*' -mmin -24 -size +0 | "
               f"xargs grep -l {shlex.quote(AUTH_MARKER)} | wc -l")
    env = dict(os.environ, LC_ALL="C")
    started = time.perf_counter()
    result = run(["/usr/bin/time", "-v", "-o", time_file, "sh", "-c", command], env=env)
    wall = time.perf_counter() - started
    t = parse_time_v(time_file)
    return {"count": int(result.stdout.strip()), "wall": wall, "cpu": t["cpu"], "maxrss_kb": t.get("maxrss_kb", 0)}

def once_count(bench, directory, snapshot, state, tag):
    time_file = bench.path("logs", f"time-once-{tag}.txt")
    started = time.perf_counter()
    run(["/usr/bin/time", "-v", "-o", time_file, bench.daemon_bin, "--once", "--config", bench.daemon_conf,
         "--session-dir", directory, "--snapshot", snapshot, "--state", state])
    wall = time.perf_counter() - started
    t = parse_time_v(time_file)
    s = bench.status(snapshot, state)
    return {"count": s["sessions"]["active_authenticated"], "wall": wall, "cpu": t["cpu"],
            "maxrss_kb": t.get("maxrss_kb", 0), "scan_us": s["last_scan"]["duration_us"],
            "files_seen": s["sessions"]["files_seen"]}

def check_counts(bench, what, expected, near_boundary=0, **counts):
    if near_boundary:
        bench.notes.append(f"{what}: {near_boundary} file(s) within 3 s of the 24-minute boundary")
    bad = {k: v for k, v in counts.items() if v != expected}
    if bad:
        bench.fail(f"{what}: expected {expected} active authenticated sessions, got {counts}")
        return False
    return True

def wait_scan_after(bench, snapshot, state, previous, timeout):
    """Waits until last_scan differs from `previous` (wall_time,
    duration_us). Also notes the oldest heartbeat seen meanwhile
    (bench.max_age_seen): readers see that age while the helper scans."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = bench.status(snapshot, state)
        bench.max_age_seen = max(getattr(bench, "max_age_seen", 0.0), float(s.get("age_seconds", 0.0)))
        scan = (s.get("last_scan", {}).get("wall_time"), s.get("last_scan", {}).get("duration_us"))
        if scan[0] and scan != previous:
            return s
        time.sleep(0.1)
    raise HardCheckFailed(f"no new scan published within {timeout:.0f} s")

def wait_count(bench, snapshot, state, expected, timeout):
    deadline = time.monotonic() + timeout
    s = None
    while time.monotonic() < deadline:
        s = bench.status(snapshot, state)
        if s.get("sessions", {}).get("active_authenticated") == expected:
            return s
        time.sleep(0.05)
    return s


def warm_first_scans(bench, directory, snapshot, state, tag, reps):
    """`coupecircuitd --once` against the shell way, page cache warm: a
    warm-up pair, then `reps` alternating pairs."""
    # Warm-up (not measured): every file read once, then each tool once.
    bench.prewarm(directory)
    once_count(bench, directory, snapshot, state, f"{tag}-warmup")
    shell_count(bench, directory, f"{tag}-warmup")
    return alternating_first_scans(bench, directory, snapshot, state, tag, reps, cold=False)


def cold_first_scans(bench, directory, snapshot, state, tag, rounds):
    """The same, page cache dropped before each run."""
    bench.tool_json("retime", directory)
    return alternating_first_scans(bench, directory, snapshot, state, tag, rounds, cold=True)


def alternating_first_scans(bench, directory, snapshot, state, tag, rounds, cold):
    """`rounds` pairs of first scans, the order alternating, page cache warm
    (read before each pair) or cold (dropped before each run)."""
    kind = "cold" if cold else "warm"
    once, shell = [], []
    for i in range(rounds):
        if not cold:
            bench.prewarm(directory)
        run_tag = f"{tag}-cold-{i}" if cold else f"{tag}-{i}"
        order = ("once", "shell") if i % 2 == 0 else ("shell", "once")
        for which in order:
            if cold:
                drop_caches()
            if which == "once":
                once.append(once_count(bench, directory, snapshot, state, run_tag))
            else:
                shell.append(shell_count(bench, directory, run_tag))
        exp_now = bench.tool_json("expect", directory)
        check_counts(bench, f"{tag} first scan ({kind}) round {i + 1}", exp_now["expected_active_authenticated"],
                     near_boundary=exp_now["near_boundary"], coupecircuitd=once[-1]["count"], shell=shell[-1]["count"])
        expected = "" if cold else f", expected {exp_now['expected_active_authenticated']}"
        counts = "" if cold else f" (count {once[-1]['count']} / {shell[-1]['count']}{expected})"
        log(f"  {tag} {kind}: coupecircuitd --once {once[-1]['wall']:.3f} s, shell {shell[-1]['wall']:.3f} s{counts}")
    return {"once": once, "shell": shell}


def scan_state(s):
    return s["last_scan"]["wall_time"], s["last_scan"]["duration_us"]


def periodic_round(bench, helper, directory, snapshot, state, tag, i, previous, interval):
    """1 % of the files changed right after a periodic scan: the inotify
    catch-up, the next periodic full rescan, then the shell way (helper
    stopped). Returns (catch-up, periodic scan, shell run, scan state)."""
    # Mutate right after a periodic scan so that the next one starts after
    # the change is complete.
    s = wait_scan_after(bench, snapshot, state, previous, timeout=interval * 3 + 60)
    cpu0 = cpu_ns(helper.pid)
    mutated = bench.tool_json("mutate", directory, 10, 1000 + i)
    t0 = time.perf_counter()
    expected = mutated["expected_active_authenticated"]
    s = wait_count(bench, snapshot, state, expected, timeout=60)
    catchup = {"seconds": time.perf_counter() - t0, "cpu_s": (cpu_ns(helper.pid) - cpu0) / 1e9,
               "changed": mutated["changed"], "change_s": mutated["seconds"]}
    check_counts(bench, f"{tag} after 1 % changed (inotify)", expected,
                 coupecircuitd=s.get("sessions", {}).get("active_authenticated"))
    # A periodic scan that overlapped the change does not count.
    cpu1 = cpu_ns(helper.pid)
    bench.max_age_seen = 0.0
    s = wait_scan_after(bench, snapshot, state, scan_state(s), timeout=interval * 3 + 60)
    cpu2 = cpu_ns(helper.pid)
    periodic = {"scan_s": s["last_scan"]["duration_us"] / 1e6, "cpu_s": (cpu2 - cpu1) / 1e9,
                "count": s["sessions"]["active_authenticated"], "max_age_s": bench.max_age_seen}
    # The shell way after the same change, helper paused.
    os.kill(helper.pid, signal.SIGSTOP)
    try:
        bench.prewarm(directory)
        shell = shell_count(bench, directory, f"{tag}-rescan-{i}")
    finally:
        os.kill(helper.pid, signal.SIGCONT)
    check_counts(bench, f"{tag} rescan round {i + 1}", expected, coupecircuitd=periodic["count"],
                 shell=shell["count"])
    log(f"  {tag} rescan: periodic {periodic['scan_s']:.3f} s (cpu {periodic['cpu_s']:.3f} s), "
        f"shell {shell['wall']:.3f} s, inotify catch-up of {mutated['changed']} files "
        f"{catchup['seconds']:.3f} s")
    return catchup, periodic, shell, scan_state(s)


def periodic_rescans(bench, directory, snapshot, state, tag, reps, count, out):
    """Rescan after 1 % of the files changed, long-running helper. The
    interval only has to leave time for the change and its inotify
    catch-up between two periodic scans."""
    bench.tool_json("retime", directory)
    interval = 5 if count <= 100_000 else 15
    bench.prewarm(directory)
    helper = bench.start_daemon(directory, snapshot, state, interval=interval, name=f"scan-{tag}-periodic")
    periodic, shell_r, catchup = [], [], []
    try:
        s = bench.status(snapshot, state)
        out["daemon_rss_after_first_scan_kb"] = proc_status_kb(helper.pid, "VmRSS")
        previous = scan_state(s)
        for i in range(reps):
            c, p, sh, previous = periodic_round(bench, helper, directory, snapshot, state, tag, i, previous, interval)
            catchup.append(c)
            periodic.append(p)
            shell_r.append(sh)
        out["daemon_hwm_kb"] = proc_status_kb(helper.pid, "VmHWM")
    finally:
        PROCS.stop(helper)
    return {"interval": interval, "periodic": periodic, "shell": shell_r, "inotify_catchup": catchup}


def sighup_rescans(bench, directory, snapshot, state, tag, reps, out):
    """SIGHUP (reload): the documented full rescan trigger."""
    helper = bench.start_daemon(directory, snapshot, state, interval=86400, name=f"scan-{tag}-sighup")
    sighup = []
    try:
        for i in range(reps):
            mutated = bench.tool_json("mutate", directory, 10, 2000 + i)
            expected = mutated["expected_active_authenticated"]
            wait_count(bench, snapshot, state, expected, timeout=60)
            s = bench.status(snapshot, state)
            previous = scan_state(s)
            bench.prewarm(directory)
            cpu0 = cpu_ns(helper.pid)
            bench.max_age_seen = 0.0
            os.kill(helper.pid, signal.SIGHUP)
            s = wait_scan_after(bench, snapshot, state, previous, timeout=600)
            cpu1 = cpu_ns(helper.pid)
            sighup.append({"scan_s": s["last_scan"]["duration_us"] / 1e6, "cpu_s": (cpu1 - cpu0) / 1e9,
                           "count": s["sessions"]["active_authenticated"], "max_age_s": bench.max_age_seen})
            check_counts(bench, f"{tag} SIGHUP rescan round {i + 1}", expected, coupecircuitd=sighup[-1]["count"])
            log(f"  {tag} SIGHUP rescan: {sighup[-1]['scan_s']:.3f} s (cpu {sighup[-1]['cpu_s']:.3f} s)")
        out["sighup_hwm_kb"] = proc_status_kb(helper.pid, "VmHWM")
    finally:
        PROCS.stop(helper)
    return sighup


def scanner_size(bench, count, reps, can_drop, keep=False):
    tag = f"{count // 1000}k"
    directory, info = bench.generate(f"scan-{tag}", count, seed=count + 11, stable=900)
    base = bench.mkdir(bench.path("scan", tag))
    snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
    out = {"files": count, "generate_s": info["seconds"]}

    # First scan, warm: a warm-up pair, then `reps` alternating pairs.
    exp = bench.tool_json("retime", directory)
    expected = exp["expected_active_authenticated"]
    out["expected"] = expected
    out["warm"] = warm_first_scans(bench, directory, snapshot, state, tag, reps)
    if can_drop:
        # One cold round at 1M files: minutes each.
        out["cold"] = cold_first_scans(bench, directory, snapshot, state, tag, reps if count < 1_000_000 else 1)
    out["rescan"] = periodic_rescans(bench, directory, snapshot, state, tag, reps, count, out)
    out["sighup"] = sighup_rescans(bench, directory, snapshot, state, tag, reps, out)
    # Removing a million files takes minutes on a filesystem that discards
    # freed blocks: it is left to the end of the run (CLEANUP_PATHS), after
    # every measurement.
    out["directory"] = directory if keep else None
    return out


def speed_up_row(table, label, measure, mine, theirs, mine_key="wall", cpu_mine=None, rss=""):
    """Appends one shell / coupecircuitd row to `table`; returns the speed-ups."""
    speed = [t["wall"] / m[mine_key] for m, t in zip(mine, theirs)]
    cpu_values = cpu_mine if cpu_mine is not None else [m["cpu"] for m in mine]
    cpu_ratio = [t["cpu"] / c if c > 0 else float("inf") for c, t in zip(cpu_values, theirs)]
    table.append(f"| {label} | {measure} | {med([m[mine_key] for m in mine]):.3f} s | "
                 f"{med([t['wall'] for t in theirs]):.3f} s | {med(speed):.2f}× ({spread(speed)}) | "
                 f"{med(cpu_ratio):.2f}× | {rss} |")
    return speed


def size_table_rows(bench, table, label, r):
    """The rows of one directory size; returns the speed-ups by measure."""
    w, p, h = r["warm"], r["rescan"], r["sighup"]
    rss = (f"{med([o['maxrss_kb'] for o in w['once']]) / 1024:.1f} MB / "
           f"{med([s['maxrss_kb'] for s in w['shell']]) / 1024:.1f} MB")
    speeds = {"warm": speed_up_row(table, label, "first scan, warm cache (`--once`, process wall time)", w["once"],
                                   w["shell"], rss=rss), "cold": None}
    if "cold" in r:
        speeds["cold"] = speed_up_row(table, label, "first scan, cold cache (`--once`)", r["cold"]["once"],
                                      r["cold"]["shell"])
    speeds["rescan"] = speed_up_row(table, label,
                                    f"rescan after 1 % changed (periodic full rescan, `--interval {p['interval']}`)",
                                    p["periodic"], p["shell"], mine_key="scan_s",
                                    cpu_mine=[x["cpu_s"] for x in p["periodic"]],
                                    rss=f"{r['daemon_hwm_kb'] / 1024:.1f} MB (VmHWM)")
    speeds["sighup"] = speed_up_row(table, label, "rescan after 1 % changed (SIGHUP reload)", h, p["shell"],
                                    mine_key="scan_s", cpu_mine=[x["cpu_s"] for x in h],
                                    rss=f"{r['sighup_hwm_kb'] / 1024:.1f} MB (VmHWM)")
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
        bench.notes.append(f"{label} files: the helper does not tick while it scans, so the snapshot's "
                           f"heartbeat reached {max(ages.values()):.1f} s during a full rescan: beyond "
                           "CoupeCircuitMaxAge (10 s) mod_coupecircuit exports COUPECIRCUIT_ETAT=inconnu "
                           "and drops LOAD_AVG/SESSIONS_ACTIVES until the scan ends.")
    return speeds


def speed_row(what, speeds, target, limit):
    return {"section": "3", "what": what, "value": f"{med(speeds):.2f}×", "spread": spread(speeds),
            "target": target, "met": med(speeds) >= limit}


def summary_rows(size, label, r, speeds):
    """The summary rows of the largest size measured."""
    note = "" if size == 1_000_000 else f" (at {label} files; targets are for 1M)"
    rows = [speed_row(f"Scanner {label} files: first scan, warm, shell / coupecircuitd{note}", speeds["warm"],
                      "≥ 1.5×", 1.5)]
    if speeds["cold"]:
        rows.append(speed_row(f"Scanner {label} files: first scan, cold, shell / coupecircuitd{note}",
                              speeds["cold"], "≥ 1.5×", 1.5))
    rows.append(speed_row(f"Scanner {label} files: rescan after 1 % changed (periodic), shell / coupecircuitd",
                          speeds["rescan"], "≥ 3×", 3))
    rows.append(speed_row(f"Scanner {label} files: rescan after 1 % changed (SIGHUP), shell / coupecircuitd",
                          speeds["sighup"], "≥ 3×", 3))
    p = r["rescan"]
    inotify_ratio = [t["cpu"] / c["cpu_s"] for c, t in zip(p["inotify_catchup"], p["shell"]) if c["cpu_s"] > 0]
    if inotify_ratio:
        rows.append({"section": "3", "what": f"Scanner {label} files: the same 1 % change absorbed "
                     "through inotify, shell CPU / helper CPU",
                     "value": f"{med(inotify_ratio):.1f}×", "spread": spread(inotify_ratio, "{:.1f}"),
                     "target": "(reference)", "met": None})
    peak = max(r["daemon_hwm_kb"], r["sighup_hwm_kb"], max(o["maxrss_kb"] for o in r["warm"]["once"])) / 1024
    rows.append({"section": "3", "what": f"Scanner {label} files: helper peak RSS (VmHWM / max RSS)",
                 "value": f"{peak:.1f} MB", "spread": "", "target": "≤ 100 MB", "met": peak <= 100})
    return rows


def run_section(bench):
    log("3. scanner: coupecircuitd against find | xargs grep | wc -l")
    sizes = [10_000] if bench.quick else [10_000, 100_000, 1_000_000]
    reps = 3
    can_drop = drop_caches()
    if not can_drop:
        bench.notes.append("Dropping the page cache (`echo 3 > /proc/sys/vm/drop_caches`) is not permitted here: "
                           "cold-cache figures are missing.")
    raw = {}
    for size in sizes:
        raw[size] = scanner_size(bench, size, reps, can_drop, keep=(size == 100_000))
    bench.results["sections"]["scanner"] = raw
    bench.scanner_dir_100k = raw.get(100_000, {}).get("directory")

    table = ["| Files | Measure | coupecircuitd (median) | shell way (median) | Speed-up (median, min–max) | CPU ratio shell/helper | Peak RSS helper / shell |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for size, r in raw.items():
        speeds = size_table_rows(bench, table, human_count(size), r)
        if size == max(raw):
            bench.rows.extend(summary_rows(size, human_count(size), r, speeds))
    bench.details.append(("3. Scanner",
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
                         "1M files: " + ", ".join(f"{v:.0f} s" for v in bench.prewarm_seconds.get("scan-1000k", [])[:3]) +
                         "…); CPU of the periodic rescan includes the helper's idle ticks while waiting for it.\n\n"
                         + "\n".join(table)))

