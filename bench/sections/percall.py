"""1. Per-request cost: callgrind instruction counts of `apache2 -X` (prefork)."""
import contextlib
import http.client
import os
import signal
import subprocess

from lib.common import PROCS, HardCheckFailed, free_port, human_count, log, med, run, spread, wait_http
from lib.profiles import callgrind_delta


def send_requests(port, path, count, setup_path, tag):
    """`count` requests on one keep-alive connection (after `setup_path`
    once); returns the first body."""
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
    return first_body


def instruction_total(out_file, tag):
    total = None
    with open(out_file) as f:
        for line in f:
            if line.startswith("totals:") or (total is None and line.startswith("summary:")):
                total = int(line.split()[1])
    if total is None:
        raise HardCheckFailed(f"{tag}: no instruction total in {out_file}")
    return total


@contextlib.contextmanager
def helper_paused(bench):
    """The module helper stopped (SIGSTOP) for the duration, then continued."""
    helper = bench.module_helper["process"] if bench.module_helper else None
    if helper is not None and helper.poll() is None:
        os.kill(helper.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if helper is not None and helper.poll() is None:
            os.kill(helper.pid, signal.SIGCONT)


def callgrind_total(bench, conf, port, path, count, setup_path, tag, check=None):
    """Runs apache2 -X under callgrind, sends `count` requests on one
    keep-alive connection and returns the total instruction count.

    The helper is paused (SIGSTOP) while the requests are sent: what it
    makes the module do is per second (a heartbeat, a republished snapshot
    copied once by each thread), not per request, and under callgrind the
    2N requests last twice as long as the N ones, so that work would be
    counted per request, tens of times over and varying with the machine's
    load. The snapshot stays fresh meanwhile (a few seconds, MaxAge 10 s)."""
    out_dir = bench.mkdir(bench.path("callgrind"), owner_www=True, mode=0o777)
    out_file = os.path.join(out_dir, f"{tag}.{count}.out")
    if os.path.exists(out_file):
        os.unlink(out_file)
    args = ["valgrind", "--tool=callgrind", "--collect-atstart=yes", f"--callgrind-out-file={out_file}",
            bench.apache_bin, "-X", "-f", conf]
    if bench.is_root:
        # callgrind creates its output file at start and writes it at exit:
        # the whole process runs as the Apache user so both work.
        args = ["setpriv", f"--reuid={bench.www_user}", f"--regid={bench.www_user}", "--init-groups"] + args
    process = PROCS.start(args, bench.path("logs", f"callgrind-{tag}.log"))
    try:
        wait_http(port, "/static.txt", timeout=120, process=process)
        with helper_paused(bench):
            first_body = send_requests(port, path, count, setup_path, tag)
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
    return instruction_total(out_file, tag)


# (tag, title, features, path, setup path, check kind)
ROWS = (
    ("static_none", "Static file, no module", [], "/static.txt", None, None),
    ("static_setenv", "Static file, mod_env SetEnv ×7 (floor)", ["setenv"], "/static.txt", None, None),
    ("static_cc", "Static file, mod_coupecircuit", ["cc"], "/static.txt", None, None),
    ("static_cc_refuse", "Static file, mod_coupecircuit, refuse-new on (not tripped)", ["cc", "refuse"],
     "/static.txt", None, None),
    ("php_none", "PHP page, no module, does not touch $_SERVER", ["php"], "/none.php", None, None),
    ("php_uri", "PHP page, no module, reads $_SERVER['REQUEST_URI'] only", ["php"], "/uri.php", None, None),
    ("php_server_none", "PHP page reading the seven keys, no module (absent)", ["php"], "/server.php", None, None),
    ("php_setenv", "PHP page, SetEnv ×7, reads $_SERVER (floor)", ["php", "setenv"], "/server.php", None, "setenv"),
    ("php_cc", "PHP page, mod_coupecircuit, reads $_SERVER", ["php", "cc"], "/server.php", None, "cc"),
    ("php_apcu", "PHP page, apcu_fetch of the seven values", ["php"], "/apcu.php", "/apcu_setup.php", "apcu"),
    ("php_naive", "PHP page, sys_getloadavg() + glob() of 1k session files", ["php"], "/naive.php", None, "naive"),
)


def seven_values_check(bench, kind, snapshot):
    """A check of the first response: the page saw the seven values (and,
    through the module, the helper's session count)."""
    expected_sessions = str(bench.status(snapshot)["sessions"]["active_authenticated"])

    def check(body):
        fields = body.strip().split(" ")
        if len(fields) != 8 or any(f == "" for f in fields):
            raise HardCheckFailed(f"{kind}: the page did not see the seven values: {body!r}")
        if kind == "cc" and fields[1] != str(bench.status(snapshot)["sessions"]["active_authenticated"]):
            raise HardCheckFailed(f"mod_coupecircuit exported SESSIONS_ACTIVES={fields[1]}, "
                                  f"the helper counts {expected_sessions}")
    return check


def write_configurations(bench, snapshot):
    """One prefork server configuration per row: {tag: (conf, port)}."""
    confs = {}
    for tag, _, features, *_ in ROWS:
        port = free_port()
        conf = bench.apache_conf(f"cg-{tag}", port, "prefork", features, bench.docroot, switch_user=False,
                                 snapshot=snapshot)
        confs[tag] = (conf, port)
    return confs


def refuse_new_supported(bench, conf):
    test = run([bench.apache_bin, "-t", "-f", conf], check=False)
    if test.returncode == 0:
        return True
    why = (test.stderr or test.stdout).strip().splitlines()
    bench.notes.append("`CoupeCircuitAction refuse-new` is rejected by this build "
                       f"(`{why[0] if why else 'syntax error'}`): row 1d is n/a.")
    return False


def requests_for(tag, n):
    # The naive page costs millions of instructions a request: fewer
    # requests are enough there.
    return min(n, 100) if tag == "php_naive" else (min(n, 200) if tag.startswith("php") else n)


def measure_rows(bench, confs, n, reps, skip, checks):
    """Instructions per request of every row, `reps` times: {tag: [values]},
    and the callgrind outputs of the last repetition {tag: (N, I(N), I(2N))}."""
    figures = {tag: [] for tag, *_ in ROWS}
    outputs = {}
    broken = set(skip)
    for rep in range(reps):
        for tag, _, _, path, setup, _ in ROWS:
            if tag in broken:
                continue
            conf, port = confs[tag]
            rn = requests_for(tag, n)
            try:
                i1 = callgrind_total(bench, conf, port, path, rn, setup, f"{tag}.{rep}",
                                     checks.get(tag) if rep == 0 else None)
                i2 = callgrind_total(bench, conf, port, path, 2 * rn, setup, f"{tag}.{rep}")
            except HardCheckFailed as error:
                bench.fail(f"per-request cost, {tag}: {error}")
                broken.add(tag)
                continue
            per_request = (i2 - i1) / rn
            outputs[tag] = (rn, bench.path("callgrind", f"{tag}.{rep}.{rn}.out"),
                            bench.path("callgrind", f"{tag}.{rep}.{2 * rn}.out"))
            figures[tag].append(per_request)
            log(f"  {tag} rep {rep + 1}/{reps}: {per_request:,.0f} instructions/request")
    return figures, outputs


def figures_table(figures):
    """The Markdown table of every row, and the raw figures for the JSON."""
    table = ["| Configuration | Instructions / request (median) | min–max | Added vs baseline | Ratio to the SetEnv floor |",
             "|---|---:|---:|---:|---:|"]
    raw = {}
    for tag, title, *_ in ROWS:
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
    return table, raw


def added_cost_profiles(outputs):
    """Where the instructions the module (and SetEnv) add to a static request go."""
    profile = []
    for tag, label in (("static_cc", "mod_coupecircuit"), ("static_setenv", "mod_env SetEnv ×7")):
        if tag in outputs and "static_none" in outputs:
            profile.append(f"Where the instructions {label} adds to a static request go (callgrind self cost, "
                           "per request, this configuration minus no module; top functions):\n")
            profile.append("| Function | Instructions / request |\n|---|---:|")
            for name, cost in callgrind_delta(outputs[tag], outputs["static_none"])[:12]:
                profile.append(f"| `{name}` | {cost:+,.0f} |")
            profile.append("")
    return profile


def ratio_row(what, numerators, denominators, target="(reference)", value_suffix=""):
    ratios = [a / b for a, b in zip(numerators, denominators)]
    met = med(ratios) <= 1.0 if target == "≤ 1.00" else None
    return {"section": "1", "what": what, "value": f"{med(ratios):.3f}{value_suffix}",
            "spread": spread(ratios, "{:.3f}"), "target": target, "met": met}


def summary_rows(figures):
    rows = []
    for group, label in (("static", "static file"), ("php", "PHP page")):
        cc, floor = figures[f"{group}_cc"], figures[f"{group}_setenv"]
        rows.append(ratio_row(f"Per-request instructions, {label}: mod_coupecircuit / SetEnv floor", cc, floor,
                              "≤ 1.00", f" ({human_count(med(cc))} vs {human_count(med(floor))})"))
    refuse_what = "Per-request instructions, static: refuse-new (not tripped) / floor"
    if figures["static_cc_refuse"]:
        rows.append(ratio_row(refuse_what, figures["static_cc_refuse"], figures["static_setenv"], "≤ 1.00"))
    else:
        rows.append({"section": "1", "what": refuse_what, "value": "n/a (not implemented)", "spread": "",
                     "target": "≤ 1.00", "met": None})
    if figures.get("php_server_none") and figures.get("php_cc"):
        rows.append(ratio_row("Per-request instructions, PHP page reading the seven keys: "
                              "with mod_coupecircuit / without (the A/B of section 2)",
                              figures["php_cc"], figures["php_server_none"]))
    for tag, label in (("php_apcu", "apcu_fetch"), ("php_naive", "sys_getloadavg()+glob()")):
        rows.append(ratio_row(f"Per-request instructions, PHP: {label} / mod_coupecircuit+$_SERVER",
                              figures[tag], figures["php_cc"], value_suffix=f" ({human_count(med(figures[tag]))})"))
    return rows


def run_section(bench):
    log("1. per-request cost (callgrind, apache2 -X, prefork)")
    n = 100 if bench.quick else 400
    reps = 1 if bench.quick else 3
    snapshot = bench.module_helper["snapshot"]
    checks = {tag: seven_values_check(bench, kind, snapshot) for tag, *_, kind in ROWS if kind}
    confs = write_configurations(bench, snapshot)
    skip = () if refuse_new_supported(bench, confs["static_cc_refuse"][0]) else ("static_cc_refuse",)
    figures, outputs = measure_rows(bench, confs, n, reps, skip, checks)
    table, raw = figures_table(figures)
    bench.details.append(("1. Per-request cost (callgrind)",
                          f"`apache2 -X` (prefork, one process) under `valgrind --tool=callgrind --collect-atstart=yes`, "
                          f"one keep-alive connection, the helper paused (SIGSTOP) while the requests are sent (its work is per second, not "
                          f"per request), N = {n} (static), {min(n, 200)} (PHP), {min(n, 100)} "
                          "(the naive page) and 2N requests per run: (I(2N) − I(N)) / N = instructions per request; "
                          f"{reps} repetition(s). Static file: 512 bytes. PHP: mod_php 8.2 with opcache. Baseline "
                          "for \"added\": no module (static), the page that only reads $_SERVER['REQUEST_URI'] (PHP: "
                          "PHP imports the whole CGI environment into $_SERVER on a script's first use of it, which "
                          "any application pays).\n\n" + "\n".join(table) + "\n\n"
                          + "\n".join(added_cost_profiles(outputs))))
    bench.results["sections"]["percall"] = {"n": n, "reps": reps, "rows": raw}
    bench.rows.extend(summary_rows(figures))
