"""The Markdown report: machine description and the summary table."""
import datetime
import os
import platform

from lib.common import damon_pageout_age


def machine(bench):
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
        bench.notes.append(f"This machine pages out page-cache pages left idle for about {damon:.0f} s (a DAMON "
                          "`pageout` scheme is running): \"warm\" means touched within that time. At 1M files "
                          "the warm rounds follow each other closely enough; a cold pass takes longer than that.")
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "debian": debian,
            "memory": memory, "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %z"),
            "load_at_start": os.getloadavg()}

def report(bench, elapsed):
    m = bench.results["machine"]
    lines = [f"## CoupeCircuit benchmarks ({'quick' if bench.quick else 'full'} mode)", "",
             f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']}, Debian {m['debian']}; "
             f"run {m['date']}, load average at start {m['load_at_start'][0]:.2f}; "
             f"suite time {elapsed / 60:.1f} min.", "",
             "| # | Measurement (side by side, same run) | Result (median) | min–max | Target | Met |",
             "|---|---|---:|---:|---|---|"]
    for row in bench.rows:
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        lines.append(f"| {row['section']} | {row['what']} | {row['value']} | {row['spread']} | {row['target']} | {met} |")
    if bench.failures:
        lines += ["", "**Hard checks failed:**", ""] + [f"- {f}" for f in bench.failures]
    for title, body in bench.details:
        lines += ["", f"### {title}", "", body]
    if bench.notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in bench.notes]
    return "\n".join(lines) + "\n"
