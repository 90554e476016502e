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
import json
import os
import signal
import sys
import time

# The integration tests' harness (tests/integration/harness.py) runs the
# servers of section 4.
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from lib import common  # noqa: E402
from lib.common import (CLEANUP_PATHS, PROCS, SECTIONS, HardCheckFailed, SessionStore, cleanup, log,
                        on_signal, remove_session_dir)
from lib.context import Context
from lib.report import machine, report
from sections import freshness, helper, percall, profile, scanner, throughput

SECTIONS_RUN = {"percall": percall.run_section, "throughput": throughput.run_section,
                "scanner": scanner.run_section, "freshness": freshness.run_section, "helper": helper.run_section,
                "profile": profile.run_section}


def prepare_session_store(bench):
    """The session directories' filesystem (see --session-fs)."""
    common.STORE = SessionStore(bench.work, bench.o.session_fs)
    # 1M files (70 % with one 4 KiB block) + 100k + small ones.
    kind = common.STORE.setup(size_gb=4 if bench.quick else 12, inodes=300_000 if bench.quick else 1_500_000)
    bench.results["session_fs"] = kind
    if kind == "loop":
        bench.notes.append("Session directories: a dedicated ext4 filesystem (sparse image under the work directory, "
                           "loop device with direct I/O, default mount options: relatime, no discard), removed at "
                           "the end of the run.")
    else:
        bench.notes.append(f"Session directories: plain directories under {common.STORE.root}.")


def wanted_sections(bench):
    if bench.o.only:
        wanted = bench.o.only.split(",")
    else:
        wanted = [s for s in SECTIONS if s != "profile" or (not bench.quick and not bench.o.no_profile)]
    for name in wanted:
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name} (one of {', '.join(SECTIONS)})")
    return wanted


def start_module_helper(bench, glob_dir):
    """The helper whose snapshot the Apache servers of sections 1-2 read."""
    base = bench.mkdir(bench.path("module"))
    snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
    process = bench.start_daemon(glob_dir, snapshot, state, name="module-helper")
    bench.module_helper = {"process": process, "snapshot": snapshot, "state": state}


def run_wanted(bench, wanted, timings):
    for name in SECTIONS:
        if name not in wanted:
            continue
        if name == "scanner" and bench.module_helper:
            PROCS.stop(bench.module_helper["process"])
            bench.module_helper = None
        started = time.monotonic()
        try:
            SECTIONS_RUN[name](bench)
        except HardCheckFailed as error:
            bench.fail(f"{name}: {error}")
        timings[name] = time.monotonic() - started
        log(f"section {name} done in {timings[name]:.0f} s")


def write_report(bench, timings):
    elapsed = time.monotonic() - bench.started
    bench.results["timings_s"] = timings
    bench.results["elapsed_s"] = elapsed
    bench.results["failures"] = bench.failures
    bench.results["notes"] = bench.notes
    text = report(bench, elapsed)
    with open(bench.path("results.md"), "w") as f:
        f.write(text)
    with open(bench.path("results.json"), "w") as f:
        json.dump(bench.results, f, indent=2, default=str)
    print(text, flush=True)
    log(f"report: {bench.path('results.md')}, raw figures: {bench.path('results.json')}")


def remove_generated(bench):
    started = time.monotonic()
    PROCS.stop_all()
    for path in list(CLEANUP_PATHS):
        if common.STORE.kind != "loop":
            remove_session_dir(path)
        CLEANUP_PATHS.remove(path)
    common.STORE.teardown()
    log(f"generated session directories removed in {time.monotonic() - started:.0f} s")


def run_sections(bench):
    bench.mkdir(bench.path("logs"))
    prepare_session_store(bench)
    with open(bench.daemon_conf, "w") as f:
        f.write("[log]\nlevel = notice\n")
    bench.results["machine"] = machine(bench)
    wanted = wanted_sections(bench)
    # A world-readable 1k-file session directory: the helper for sections
    # 1-2 scans it and the naive PHP page globs it.
    glob_dir, _ = bench.generate("module-1k", 1000, seed=1001, stable=900, mode="0644")
    bench.docroot = bench.write_docroot(glob_dir)
    timings = {}
    try:
        if any(s in wanted for s in ("percall", "throughput")):
            start_module_helper(bench, glob_dir)
        run_wanted(bench, wanted, timings)
    finally:
        if bench.module_helper:
            PROCS.stop(bench.module_helper["process"])
    write_report(bench, timings)
    remove_generated(bench)
    if bench.failures:
        return 1
    if bench.o.strict and any(r["met"] is False for r in bench.rows):
        return 1
    return 0


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
    return run_sections(Context(options))


if __name__ == "__main__":
    sys.exit(main())
