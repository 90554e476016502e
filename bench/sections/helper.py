"""5. Helper cost: coupecircuitd CPU at rest and under session churn."""
import json
import os
import subprocess
import time

from lib.common import PROCS, cpu_ns, HardCheckFailed, log, proc_split, proc_status_kb


def measure_rest(bench, helper, snapshot, state, window):
    """CPU % of the idle helper over `window` s, and the duration of a
    periodic full rescan when one fell in the window (else 0)."""
    time.sleep(2)
    scan0 = bench.status(snapshot, state).get("last_scan", {})
    c0, t0 = cpu_ns(helper.pid), time.perf_counter()
    if helper.poll() is not None:
        raise HardCheckFailed(f"coupecircuitd exited ({helper.returncode}), see {helper.log_path}")
    time.sleep(window)
    c1, t1 = cpu_ns(helper.pid), time.perf_counter()
    scan1 = bench.status(snapshot, state).get("last_scan", {})
    rest_rescan_s = (scan1.get("duration_us", 0) / 1e6
                     if (scan1.get("wall_time"), scan1.get("duration_us")) !=
                     (scan0.get("wall_time"), scan0.get("duration_us")) else 0.0)
    return (c1 - c0) / 1e9 / (t1 - t0) * 100, rest_rescan_s


def measure_churn(bench, helper, directory, window):
    """The helper's CPU while cc_benchtool rewrites 1,000 session files a second."""
    writer = subprocess.Popen([bench.tool, "churn", directory, "1000", str(window + 2), "77"],
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
    writes = churn_info["rate"] * (t3 - t2)
    return {"churn_pct": (c3 - c2) / 1e9 / (t3 - t2) * 100, "writer": churn_info,
            "writer_pct": (w1 - w0) / 1e9 / (t3 - t2) * 100, "hwm_kb": proc_status_kb(helper.pid, "VmHWM"),
            "user_s": split1[0] - split0[0], "system_s": split1[1] - split0[1],
            "switches_per_write": (split1[2] - split0[2]) / max(1.0, writes),
            "cpu_us_per_write": (c3 - c2) / 1e3 / max(1.0, writes)}


def report(bench, out, window):
    table = ["| Condition | coupecircuitd CPU (% of one core) | Notes |", "|---|---:|---|",
             f"| at rest, {window} s | {out['rest_pct']:.3f} % | default rescan interval (60 s): "
             + (f"the window holds one periodic full rescan ({out['rest_rescan_s']:.2f} s) |"
                if out["rest_rescan_s"] else "no periodic full rescan in the window |"),
             f"| {out['writer']['rate']:.0f} session writes/s, {window} s | {out['churn_pct']:.3f} % | "
             f"{out['cpu_us_per_write']:.1f} µs of helper CPU per write (user {out['user_s']:.2f} s / system "
             f"{out['system_s']:.2f} s, tick-sampled), {out['switches_per_write']:.2f} context switches per write; "
             f"the writer itself: {out['writer_pct']:.1f} % |"]
    bench.details.append(("5. Helper cost",
                          f"`coupecircuitd --foreground` on 100k session files; CPU from /proc/<pid>/task/*/schedstat "
                          f"over {window} s at rest, then over {window} s while a writer rewrites random sess_ files "
                          "(new content each time) at a steady 1,000 per second. Peak RSS (VmHWM): "
                          f"{out['hwm_kb'] / 1024:.1f} MB.\n\n" + "\n".join(table)))
    bench.rows.append({"section": "5",
                       "what": f"Helper CPU under 1,000 writes/s on 100k files (at rest: {out['rest_pct']:.3f} %)",
                       "value": f"{out['churn_pct']:.2f} % of a core", "spread": f"(one {window} s window)",
                       "target": "≤ 2 %", "met": out["churn_pct"] <= 2})


def run_section(bench):
    log("5. helper CPU at rest and under 1,000 session writes/s (100k files)")
    window = 10 if bench.quick else 60
    directory = getattr(bench, "scanner_dir_100k", None)
    if directory:
        bench.tool_json("retime", directory)
    else:
        directory, _ = bench.generate("helper-100k", 100_000, seed=555, stable=900)
    bench.helper_dir = directory
    base = bench.mkdir(bench.path("helper"))
    snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
    helper = bench.start_daemon(directory, snapshot, state, name="cost-helper")
    out = {}
    try:
        rest, rest_rescan_s = measure_rest(bench, helper, snapshot, state, window)
        out = {"window_s": window, "rest_pct": rest, "rest_rescan_s": rest_rescan_s,
               **measure_churn(bench, helper, directory, window)}
        log(f"  at rest {rest:.3f} % of a core, under churn {out['churn_pct']:.3f} % "
            f"({out['writer']['rate']:.0f} writes/s)")
    finally:
        PROCS.stop(helper)
    bench.results["sections"]["helper"] = out
    report(bench, out, window)
